//go:build race

package main_test

// raceEnabled: the race detector slows this process's client code down.
const raceEnabled = true
