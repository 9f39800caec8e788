package queue

import (
	"testing"
	"time"
)

// BenchmarkAppendNextAck measures the queue's throughput for 2 KiB records
// with the default SyncInterval policy: one producer appends, the consumer
// reads batches of up to 256 records (1 MiB) and acknowledges each batch,
// which writes and fsyncs the ack file.
func BenchmarkAppendNextAck(b *testing.B) {
	for _, bc := range []struct {
		name    string
		backlog bool // append everything first, then drain (recovery after an outage)
	}{
		{"interleaved", false},
		{"drain-backlog", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q, err := Open(b.TempDir(), Options{MaxBytes: 4 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			rec := make([]byte, 2<<10)
			for i := range rec {
				rec[i] = byte(i)
			}
			const batch = 256
			drain := func() int {
				rs, err := q.Next(batch, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				if len(rs) > 0 {
					if err := q.Ack(rs[len(rs)-1].ID); err != nil {
						b.Fatal(err)
					}
				}
				return len(rs)
			}
			b.SetBytes(int64(len(rec)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			got := 0
			for i := range b.N {
				if err := q.Append(rec); err != nil {
					b.Fatal(err)
				}
				if !bc.backlog && i%batch == batch-1 {
					got += drain()
				}
			}
			for got < b.N {
				n := drain()
				if n == 0 {
					b.Fatalf("delivered %d of %d", got, b.N)
				}
				got += n
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
