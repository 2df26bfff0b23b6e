//go:build !unix

package main_test

// Connection sharing is Unix's: no masters here.
const sharingHere = false

func killMasters(string) {}

func mastersIn(string) []int { return nil }
