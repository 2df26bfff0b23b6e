package main

import (
	"os"
	"path/filepath"
)

// platformStateDir is %LOCALAPPDATA%\execd on Windows.
func platformStateDir() string {
	if d := os.Getenv("LOCALAPPDATA"); d != "" {
		return filepath.Join(d, "execd")
	}
	return ""
}
