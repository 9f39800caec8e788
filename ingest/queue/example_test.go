package queue_test

import (
	"fmt"
	"log"
	"os"

	"github.com/greenloop/greenloop/ingest/queue"
)

// The sender's loop: read a batch, deliver it, acknowledge it. What was not
// acknowledged when the process stops is returned again after Open.
func Example() {
	dir, err := os.MkdirTemp("", "queue-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	q, err := queue.Open(dir, queue.Options{MaxBytes: 1 << 30})
	if err != nil {
		log.Fatal(err)
	}
	for _, batch := range []string{"batch 1", "batch 2", "batch 3"} {
		if err := q.Append([]byte(batch)); err != nil {
			log.Fatal(err)
		}
	}
	recs, err := q.Next(2, 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Println("sent", string(r.Data)) // the server acknowledged it
	}
	if err := q.Ack(recs[len(recs)-1].ID); err != nil {
		log.Fatal(err)
	}
	q.Close()

	q, err = queue.Open(dir, queue.Options{MaxBytes: 1 << 30})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	recs, _ = q.Next(10, 0)
	fmt.Println("after restart:", len(recs), "pending:", string(recs[0].Data))
	// Output:
	// sent batch 1
	// sent batch 2
	// after restart: 1 pending: batch 3
}
