//go:build !windows

package main

// runService: only Windows has a service manager to answer.
func runService() (bool, int) { return false, 0 }
