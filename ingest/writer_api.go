package ingest

import (
	"github.com/greenloop/greenloop/internal/sample"
)

// WriteOptions are the per-request settings of a write.
type WriteOptions struct {
	// Tenant is stamped on every series as the "tenant" label, replacing any
	// the client sent. Empty means single-tenant mode: no label is stamped.
	Tenant string
	// ExtraLabels are added to every series (e.g. from ?extra_label=site=fra1),
	// without overriding labels the series already has.
	ExtraLabels []sample.Label
}

// Result is the outcome of a write: how many samples were stored, and which were refused and why.
type Result struct {
	// Accepted is the number of samples stored (canonical copies made by exporter mapping not counted).
	Accepted int `json:"accepted"`
	// RejectedCount is the number of samples refused.
	RejectedCount int `json:"rejected"`
	// Rejected lists refusals, capped at MaxListedRejections entries.
	Rejected []sample.Rejection `json:"rejections,omitempty"`
}

// MaxListedRejections caps how many refusals one response lists; RejectedCount has them all.
const MaxListedRejections = 100

// Reject records one refusal, listing it while under the cap.
func (r *Result) Reject(n int, rej sample.Rejection) {
	r.RejectedCount += n
	if len(r.Rejected) < MaxListedRejections {
		r.Rejected = append(r.Rejected, rej)
	}
}

// Merge adds another result's counts and refusals.
func (r *Result) Merge(o Result) {
	r.Accepted += o.Accepted
	r.RejectedCount += o.RejectedCount
	for _, rej := range o.Rejected {
		if len(r.Rejected) >= MaxListedRejections {
			break
		}
		r.Rejected = append(r.Rejected, rej)
	}
}
