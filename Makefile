# Release artefacts of execd and rexec. Everything lands in out/:
#
#   make build        both binaries for this machine (out/linux_amd64/...)
#   make release      binaries for every OS and arch (archives in out/release),
#                     man pages, completions, .deb and .rpm for Linux
#   make packages     .deb and .rpm for ARCHES (needs nfpm)
#   make clean
#
# VERSION is the source tree's release (cmd/internal/buildinfo); the binaries
# carry their commit from the build info (-buildvcs).

VERSION := $(shell sed -n 's/^const Release = "\(.*\)"/\1/p' cmd/internal/buildinfo/buildinfo.go)
GOOS    := $(shell go env GOOS)
GOARCH  := $(shell go env GOARCH)
TARGETS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
ARCHES  := amd64 arm64
NFPM    ?= nfpm
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
GOBUILD := CGO_ENABLED=0 go build -trimpath -buildvcs=true -ldflags='-s -w'

.PHONY: build release binaries man completions packages clean

build: out/$(GOOS)_$(GOARCH)/execd out/$(GOOS)_$(GOARCH)/rexec

out/%/execd out/%/rexec: FORCE
	GOOS=$(word 1,$(subst _, ,$*)) GOARCH=$(word 2,$(subst _, ,$*)) $(GOBUILD) -o out/$*/ ./cmd/execd ./cmd/rexec

binaries:
	@for t in $(TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; \
		echo "build $$os/$$arch"; \
		GOOS=$$os GOARCH=$$arch $(GOBUILD) -o out/$${os}_$${arch}/ ./cmd/execd ./cmd/rexec || exit 1; \
	done

man: build
	rm -rf out/man
	out/$(GOOS)_$(GOARCH)/execd __man out/man
	$(GOBUILD) -tags manpage -o out/mantool/rexec ./cmd/rexec
	out/mantool/rexec __man out/man
	gzip -9n out/man/*.1

completions: build
	mkdir -p out/completions
	for p in execd rexec; do \
		out/$(GOOS)_$(GOARCH)/$$p completion bash > out/completions/$$p.bash && \
		out/$(GOOS)_$(GOARCH)/$$p completion zsh > out/completions/_$$p && \
		out/$(GOOS)_$(GOARCH)/$$p completion fish > out/completions/$$p.fish && \
		out/$(GOOS)_$(GOARCH)/$$p completion powershell > out/completions/$$p.ps1 || exit 1; \
	done

packages: man completions
	mkdir -p out/packages
	for a in $(ARCHES); do \
		$(MAKE) --no-print-directory out/linux_$$a/execd && \
		rm -rf out/pkg && mkdir -p out/pkg && cp out/linux_$$a/execd out/linux_$$a/rexec out/pkg/ && \
		for f in deb rpm; do \
			ARCH=$$a VERSION=$(VERSION) $(NFPM) package --config dist/nfpm.yaml --packager $$f --target out/packages/ || exit 1; \
		done; \
	done

release: binaries man completions packages
	mkdir -p out/release
	for t in $(TARGETS); do \
		d=$${t%/*}_$${t#*/}; n=execd_$(VERSION)_$$d; \
		rm -rf out/stage/$$n && mkdir -p out/stage/$$n && \
		cp out/$$d/* LICENSE README.md out/stage/$$n/ && cp -r out/man out/completions dist docs out/stage/$$n/ && \
		case $$d in \
		windows_*) (cd out/stage && rm -f ../release/$$n.zip && zip -qr ../release/$$n.zip $$n) ;; \
		*) tar -C out/stage --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 -czf out/release/$$n.tar.gz $$n ;; \
		esac || exit 1; \
	done
	cp out/packages/* out/release/
	cd out/release && sha256sum * > SHA256SUMS

clean:
	rm -rf out

FORCE:
