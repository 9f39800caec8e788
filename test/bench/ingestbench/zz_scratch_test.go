package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/greenloop/greenloop/test/bench/loadgen"
)

func TestScratchPromHistory(t *testing.T) {
	if os.Getenv("SCRATCH") == "" {
		t.Skip()
	}
	ctx := context.Background()
	work := t.TempDir()
	sp := serverSpec{name: namePrometheus, bin: "/usr/bin/prometheus", promOOOWindow: os.Getenv("OOO")}
	srv, err := sp.start(work)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	step := int64(60000)
	steps := 1440
	end := time.Now().Truncate(time.Minute).UnixMilli()
	l := loadgen.Load{Kind: loadgen.Energy, Fleet: loadgen.Fleet{Series: 10000, Sites: 20}, Start: end - int64(steps-1)*step, Step: step, Steps: steps, Batch: 2000}
	c := newClient(4)
	sr, err := sendStreaming(ctx, c, srv.url+"/api/v1/write", l, 4, 10, nil)
	t.Logf("sent %+v err %v", sr, err)
	if err != nil {
		t.Log(srv.logTail(30))
		t.Fatal(err)
	}
	w, q, _ := waitQuiet(ctx, srv.pid(), time.Minute)
	t.Logf("quiet %v %v", w, q)
	n, err := verifyCount(ctx, srv, l)
	t.Logf("count %d %v", n, err)
	bl, _ := listBlocks(srv.dataDir)
	t.Logf("blocks %+v", bl)
	t.Log(srv.logTail(30))
}
