package main

import "github.com/execd-project/execd/execd"

// chownHome does nothing on Windows: run_as is not supported there.
func chownHome(*execd.User) error { return nil }
