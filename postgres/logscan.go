package postgres

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// logTailBytes is how much of the end of the server log LogTail reads.
const logTailBytes = 256 << 10

// WALGoneMarker is what a standby's WAL receiver logs when its upstream no
// longer has the WAL it needs.
const WALGoneMarker = "has already been removed"

// LastLogLine returns the last line of the server log that contains one
// of needles and comes after the last line containing after (when after
// is not ""), or "" when there is none. It reads only the end of the log.
func (i *Instance) LastLogLine(after string, needles ...string) (string, error) {
	f, err := os.Open(i.s.LogFile)
	if err != nil {
		return "", fmt.Errorf("reading the server log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := max(st.Size()-logTailBytes, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return "", err
	}
	lines := bytes.Split(buf, []byte("\n"))
	for k := len(lines) - 1; k >= 0; k-- {
		ln := lines[k]
		if after != "" && bytes.Contains(ln, []byte(after)) {
			return "", nil
		}
		for _, n := range needles {
			if bytes.Contains(ln, []byte(n)) {
				return string(bytes.TrimSpace(ln)), nil
			}
		}
	}
	return "", nil
}
