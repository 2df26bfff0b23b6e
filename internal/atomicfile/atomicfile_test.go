package atomicfile_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/execd-project/execd/internal/atomicfile"
)

// Twenty creators at once: exactly one wins, the rest see fs.ErrExist,
// and the file holds the winner's bytes whole.
func TestCreateExclusiveOneWinner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id_ed25519")
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = atomicfile.CreateExclusive(path, []byte(fmt.Sprintf("key %02d\n", i)), 0o600)
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two winners")
			winner = i
			continue
		}
		require.ErrorIs(t, err, fs.ErrExist)
	}
	require.NotEqual(t, -1, winner)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("key %02d\n", winner), string(b))
	left, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, left, 1, "no temporary file left")
}
