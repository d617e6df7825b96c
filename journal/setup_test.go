package journal

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

// TestSetupAsksAgain: a request whose answer is lost (the attempt times
// out) is made again; other errors and the overall bound end it.
func TestSetupAsksAgain(t *testing.T) {
	defer func(a, b time.Duration) { setupAttempt, setupTimeout = a, b }(setupAttempt, setupTimeout)
	setupAttempt, setupTimeout = 20*time.Millisecond, time.Second
	j := &Journal{log: slog.New(slog.DiscardHandler)}

	calls := 0
	v, err := setup(context.Background(), j, "test", func(ctx context.Context) (int, error) {
		calls++
		if calls < 3 {
			<-ctx.Done() // no answer
			return 0, ctx.Err()
		}
		return 7, nil
	})
	if err != nil || v != 7 || calls != 3 {
		t.Errorf("setup = %d, %v after %d calls; want 7 after 3", v, err, calls)
	}

	calls = 0
	refused := errors.New("refused")
	if _, err := setup(context.Background(), j, "test", func(context.Context) (int, error) { calls++; return 0, refused }); !errors.Is(err, refused) || calls != 1 {
		t.Errorf("a refusal was asked again: %v after %d calls", err, calls)
	}

	setupTimeout = 100 * time.Millisecond
	calls = 0
	_, err = setup(context.Background(), j, "test", func(ctx context.Context) (int, error) { calls++; <-ctx.Done(); return 0, ctx.Err() })
	if !errors.Is(err, context.DeadlineExceeded) || calls < 2 || calls > 6 {
		t.Errorf("never answered: %v after %d calls; want a deadline error after a few", err, calls)
	}
}
