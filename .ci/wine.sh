#!/usr/bin/env bash
# Runs the Windows build's tests under wine, with a Chinese code page (936)
# and again with code page 1252, then the end-to-end test: execd.exe under
# wine, the Linux rexec against it. Modelled on ../shared/tools/wine-go-test.sh
# (Debian 12's wine 8.0; a bcryptprimitives.dll shim for Go >= 1.22; one
# pre-warmed wineserver; LC_ALL picks the code page).
#
#   bash .ci/wine.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# A prefix of its own for each run, removed at the end: one left by an
# earlier run on the same machine (its services registered, its
# wineserver's state) made "net start" and "execd user add" fail there.
own_prefix=""
if [ -z "${WINEPREFIX:-}" ]; then
  own_prefix=$(mktemp -d /tmp/execd-wineprefix.XXXXXX)
  export WINEPREFIX="$own_prefix"
fi
export WINEDEBUG=-all WINEARCH=win64

if ! command -v wine >/dev/null 2>&1 || ! command -v x86_64-w64-mingw32-as >/dev/null 2>&1 || ! command -v locale-gen >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends wine wine64 binutils-mingw-w64-x86-64 locales >/dev/null
fi
# zh_CN.UTF-8 gives wine code page 936 and lets it write Chinese file names
# (it maps Windows names to Unix ones in the locale's charset).
if ! locale -a | grep -qi '^zh_CN\.utf-\?8$'; then
  sed -i 's/^# *zh_CN.UTF-8 UTF-8/zh_CN.UTF-8 UTF-8/' /etc/locale.gen
  grep -q '^zh_CN.UTF-8 UTF-8' /etc/locale.gen || echo 'zh_CN.UTF-8 UTF-8' >>/etc/locale.gen
  locale-gen >/dev/null
fi

# One wineserver for the whole run; its helpers start with stdio on
# /dev/null so that they never hold a test's output open.
mkdir -p "$WINEPREFIX"
wineserver -p 2>/dev/null || true # 2: one is running already
trap 'wineserver -k 2>/dev/null || true; [ -z "$own_prefix" ] || rm -rf "$own_prefix"' EXIT
SYS32="$WINEPREFIX/drive_c/windows/system32"
if [ ! -d "$SYS32" ]; then
  wineboot -i </dev/null >/dev/null 2>&1
  # A new prefix comes up with two service managers (services.exe) that
  # disagree about which services exist ("sc create" succeeds, then "net
  # start" says "Could not get handle to service"): a fresh wineserver
  # starts one.
  wineserver -k 2>/dev/null || true
  wineserver -w 2>/dev/null || true
  wineserver -p 2>/dev/null || true
fi

# Wine 8.0 lacks bcryptprimitives.dll!ProcessPrng, which Go >= 1.22 needs:
# a 2.5 KB shim forwards it to advapi32!SystemFunction036 (RtlGenRandom).
if [ ! -f "$SYS32/bcryptprimitives.dll" ]; then
  d=$(mktemp -d)
  cat >"$d/shim.s" <<'ASM'
        .text
        .globl  ProcessPrng
ProcessPrng:
        subq    $40, %rsp
        call    *__imp_SystemFunction036(%rip)
        movzbl  %al, %eax
        addq    $40, %rsp
        ret
        .globl  DllMain
DllMain:
        movl    $1, %eax
        ret
        .section .drectve
        .ascii  " -export:ProcessPrng"
ASM
  printf 'LIBRARY advapi32.dll\nEXPORTS\nSystemFunction036\n' >"$d/advapi32.def"
  x86_64-w64-mingw32-dlltool -d "$d/advapi32.def" -l "$d/libadvapi32.a"
  x86_64-w64-mingw32-as -o "$d/shim.o" "$d/shim.s"
  x86_64-w64-mingw32-ld -shared -s --entry DllMain -o "$SYS32/bcryptprimitives.dll" "$d/shim.o" "$d/libadvapi32.a"
  rm -rf "$d"
fi
wine cmd /c exit 0 </dev/null >/dev/null 2>&1

wintest() { # wintest LC_ALL RUN-PATTERN PACKAGES...
  local lc=$1 run=$2; shift 2
  GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go test -count=1 -exec "env LC_ALL=$lc wine" -run "$run" "$@"
}
echo "== windows tests under wine, code page 936 (zh_CN)"
wintest zh_CN.UTF-8 . ./internal/transcode
wintest zh_CN.UTF-8 '^TestWindowsNames$' ./internal/xfer
wintest zh_CN.UTF-8 '^TestWindows' ./rexec
echo "== windows tests under wine, code page 1252 (C.UTF-8: ANSI code page 1252, UTF-8 file names)"
wintest C.UTF-8 '^TestWindows' ./rexec
echo "== execd.exe under wine, the Linux rexec against it"
go test -count=1 -tags wine -run 'Wine' ./cmd/rexec
