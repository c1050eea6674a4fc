package postgres

// Placeholders until branch pg4 lands (removed at the merge).

import (
	"context"
	"errors"
)

type TimelineHistoryLine struct {
	Timeline int
	LSN      int64
	Reason   string
}

func (i *Instance) HistoryFile(ctx context.Context) ([]TimelineHistoryLine, error) {
	return nil, errors.New("not yet")
}

func (i *Instance) RemoveDataDir() error {
	_, err := i.MoveAside()
	return err
}
