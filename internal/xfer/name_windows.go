package xfer

// platformNameProblem refuses names Windows cannot hold.
func platformNameProblem(el string) string { return windowsNameProblem(el) }
