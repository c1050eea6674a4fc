package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// writeAck is one acknowledged write of an ackWriter.
type writeAck struct {
	id     int
	at     time.Time // when the acknowledgement arrived
	pgPort int       // the PostgreSQL that acknowledged it (inet_server_port())
}

// ackWriter is an application writing every 10 ms: one INSERT of an
// increasing id on a kept connection, reconnecting through dial after any
// error (dial gets the number of failed attempts so far, to move on to
// another server). It records every acknowledged write with its time and
// the PostgreSQL port that acknowledged it.
type ackWriter struct {
	dial  func(ctx context.Context, fails int) (*pgx.Conn, error)
	table string
	mu    sync.Mutex
	acks  []writeAck
	fails int
	quit  chan struct{}
	done  chan struct{}
}

// startAckWriter starts writing increasing ids into table (which must
// have an int primary key named id).
func startAckWriter(table string, dial func(ctx context.Context, fails int) (*pgx.Conn, error)) *ackWriter {
	w := &ackWriter{dial: dial, table: table, quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *ackWriter) run() {
	defer close(w.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for id := 1; ; id++ {
		select {
		case <-w.quit:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var err error
		if conn == nil {
			w.mu.Lock()
			fails := w.fails
			w.mu.Unlock()
			conn, err = w.dial(ctx, fails)
			if err != nil {
				conn = nil
			}
		}
		var pgPort int
		if err == nil {
			err = conn.QueryRow(ctx, "INSERT INTO "+w.table+"(id) VALUES ($1) RETURNING inet_server_port()", id).Scan(&pgPort)
			if err != nil {
				conn.Close(context.Background())
				conn = nil
			}
		}
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acks = append(w.acks, writeAck{id: id, at: time.Now(), pgPort: pgPort})
		} else {
			w.fails++
		}
		w.mu.Unlock()
	}
}

// Acks returns the acknowledged writes so far.
func (w *ackWriter) Acks() []writeAck {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]writeAck(nil), w.acks...)
}

// WaitAckOn waits for a write acknowledged by the PostgreSQL on pgPort
// after since.
func (w *ackWriter) WaitAckOn(pgPort int, since time.Time, timeout time.Duration) (writeAck, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, a := range w.Acks() {
			if a.pgPort == pgPort && a.at.After(since) {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			return writeAck{}, fmt.Errorf("no write acknowledged by port %d within %s", pgPort, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the writer and returns its acknowledged writes and the number
// of failed attempts.
func (w *ackWriter) Stop() (acks []writeAck, fails int) {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
	return w.Acks(), w.fails
}

// stopIDs ends the writer and returns the acknowledged ids and the longest
// time between two consecutive acknowledgements.
func (w *ackWriter) stopIDs() ([]int, time.Duration) {
	acks, _ := w.Stop()
	ids := make([]int, len(acks))
	for i, a := range acks {
		ids[i] = a.id
	}
	gap, _, _, _ := w.LargestGap()
	return ids, gap
}

// LargestGap is the longest time between two consecutive acknowledged
// writes, with those two writes.
func (w *ackWriter) LargestGap() (gap time.Duration, before, after writeAck, err error) {
	acks := w.Acks()
	if len(acks) < 2 {
		return 0, before, after, errors.New("fewer than two acknowledged writes")
	}
	for i := 1; i < len(acks); i++ {
		if d := acks[i].at.Sub(acks[i-1].at); d > gap {
			gap, before, after = d, acks[i-1], acks[i]
		}
	}
	return gap, before, after, nil
}
