package fshell_test

import (
	"testing"

	"github.com/execd-project/execd/internal/testmain"
)

func TestMain(m *testing.M) { testmain.Main(m, testmain.Options{Goroutines: true}) }
