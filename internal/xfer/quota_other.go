//go:build !unix

package xfer

func isQuota(error) bool { return false }
