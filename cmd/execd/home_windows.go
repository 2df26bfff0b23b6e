package main

// chownHome does nothing on Windows: run_as is not supported there.
func chownHome(home, account string) error { return nil }

// passable does nothing on Windows.
func passable(dir string) error { return nil }
