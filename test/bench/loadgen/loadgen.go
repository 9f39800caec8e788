// Package loadgen makes the synthetic remote_write load of greenloop's
// benchmarks: a fleet of power sensors with realistic labels and values,
// encoded as Prometheus remote_write 1.0 requests (protobuf WriteRequest,
// snappy block-compressed), the way a Prometheus server's remote-write queue
// sends them: a sender (a queue shard) owns a fixed set of series, so every
// series' samples reach the server in time order, and each request carries
// one sample for each of Batch series, or, with StepsPerRequest > 1, the
// samples of several consecutive time steps of them, time step by time step
// and one time series entry per sample, as a shard's batch does when the queue
// is behind.
//
// Everything is deterministic: the same Load always encodes to the same bytes,
// so greenloop and the server it is compared with get identical data.
package loadgen

import (
	"fmt"
	"math"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Metric names of the two kinds of series.
const (
	// PowerMetric is a gauge of watts per sensor.
	PowerMetric = "greenloop_power_watts"
	// EnergyMetric is a counter of joules per sensor.
	EnergyMetric = "greenloop_energy_joules_total"
)

// Kind selects what a Load's series are.
type Kind int

const (
	// Power series are gauges (PowerMetric).
	Power Kind = iota
	// Energy series are counters (EnergyMetric), integrating the same power readings.
	Energy
)

// Metric returns the metric name of the kind.
func (k Kind) Metric() string {
	if k == Energy {
		return EnergyMetric
	}
	return PowerMetric
}

// SensorsPerNode is the number of series per node; NodesPerRack the nodes of one rack.
const (
	SensorsPerNode = 10
	NodesPerRack   = 40
)

// sensor describes one of the SensorsPerNode sensors of a node.
type sensor struct {
	name, component, source string
	// base and swing are watts; digits is the reading's resolution (-1: full float64 precision).
	base, swing float64
	digits      int
}

// sensors are a node's sensors: what RAPL, NVML and a BMC's Redfish service report.
var sensors = [SensorsPerNode]sensor{
	{"cpu0", "cpu", "rapl", 120, 60, -1},
	{"cpu1", "cpu", "rapl", 115, 60, -1},
	{"dram0", "dram", "rapl", 18, 6, -1},
	{"dram1", "dram", "rapl", 17, 6, -1},
	{"gpu0", "gpu", "nvml", 210, 150, 3},
	{"gpu1", "gpu", "nvml", 205, 150, 3},
	{"gpu2", "gpu", "nvml", 215, 150, 3},
	{"gpu3", "gpu", "nvml", 200, 150, 3},
	{"psu0", "psu", "redfish", 620, 220, 0},
	{"psu1", "psu", "redfish", 610, 220, 0},
}

// Fleet is a set of Series sensors spread over Sites sites. Series i is
// sensor i%SensorsPerNode of node i/SensorsPerNode; nodes are dealt round-robin
// over the sites and fill racks of NodesPerRack.
type Fleet struct {
	Series int
	Sites  int
}

// Labels returns series i's labels, sorted by name as remote_write requires:
// __name__, component, node, rack, sensor, site, source (7 labels).
func (f Fleet) Labels(k Kind, i int) []prompb.Label {
	s := sensors[i%SensorsPerNode]
	node := i / SensorsPerNode
	sites := max(f.Sites, 1)
	site := node % sites
	local := node / sites // the node's index within its site
	rack := local / NodesPerRack
	return []prompb.Label{
		{Name: "__name__", Value: k.Metric()},
		{Name: "component", Value: s.component},
		{Name: "node", Value: fmt.Sprintf("s%02d-r%03d-n%02d", site, rack, local%NodesPerRack)},
		{Name: "rack", Value: fmt.Sprintf("s%02d-r%03d", site, rack)},
		{Name: "sensor", Value: s.name},
		{Name: "site", Value: SiteName(site)},
		{Name: "source", Value: s.source},
	}
}

// SiteName is the site label value of site number n.
func SiteName(n int) string { return fmt.Sprintf("site-%02d", n) }

// SitesUsed is the number of distinct site label values the fleet's series carry.
func (f Fleet) SitesUsed() int {
	nodes := (f.Series + SensorsPerNode - 1) / SensorsPerNode
	return min(max(f.Sites, 1), nodes)
}

// mix is a 64-bit hash (splitmix64's finalizer).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// unit returns a deterministic number in [0, 1) for (a, b).
func unit(a, b uint64) float64 {
	return float64(mix(a*0x9e3779b97f4a7c15^mix(b+1))>>11) / (1 << 53)
}

// Watts is series i's power reading at time t (ms): the sensor's base scaled
// per node, a slow daily-ish load curve, and per-reading noise, at the
// resolution its source reports (RAPL: full precision, NVML: milliwatts,
// Redfish: whole watts).
func Watts(i int, t int64) float64 {
	s := sensors[i%SensorsPerNode]
	node := uint64(i / SensorsPerNode)
	scale := 0.8 + 0.4*unit(node, 7)
	phase := 2 * math.Pi * unit(uint64(i), 11)
	load := 0.5 + 0.5*math.Sin(2*math.Pi*float64(t)/float64(6*time.Hour/time.Millisecond)+phase)
	noise := unit(uint64(i), uint64(t)) - 0.5
	v := scale * (s.base + s.swing*(0.8*load+0.2*noise))
	if s.digits >= 0 {
		p := math.Pow10(s.digits)
		v = math.Round(v*p) / p
	}
	return v
}

// Load is Steps samples, Step ms apart from Start (ms), of every series of a
// fleet, in requests of Batch series times StepsPerRequest time steps.
type Load struct {
	Kind  Kind
	Fleet Fleet
	Start int64 // ms of the first sample
	Step  int64 // ms between a series' samples
	Steps int
	Batch int // series per request (samples, when StepsPerRequest is 1)
	// StepsPerRequest is how many consecutive time steps of its Batch series
	// one request carries (0 means 1); the last request of a chunk may carry fewer.
	StepsPerRequest int
}

// Chunks is the number of series batches: requests per time window.
func (l Load) Chunks() int { return (l.Fleet.Series + l.Batch - 1) / l.Batch }

// stepsPerRequest is StepsPerRequest, at least 1.
func (l Load) stepsPerRequest() int { return max(l.StepsPerRequest, 1) }

// Windows is the number of requests each chunk is sent in: Steps divided
// into windows of StepsPerRequest steps.
func (l Load) Windows() int { return (l.Steps + l.stepsPerRequest() - 1) / l.stepsPerRequest() }

// Requests is the number of requests of the whole load.
func (l Load) Requests() int { return l.Chunks() * l.Windows() }

// Samples is the number of samples of the whole load.
func (l Load) Samples() int64 { return int64(l.Fleet.Series) * int64(l.Steps) }

// End is the timestamp (ms) of the last sample.
func (l Load) End() int64 { return l.Start + int64(l.Steps-1)*l.Step }

// ChunksOf returns the series batches sender s of n owns (chunk c goes to sender c%n).
func (l Load) ChunksOf(s, n int) []int {
	var cs []int
	for c := s; c < l.Chunks(); c += n {
		cs = append(cs, c)
	}
	return cs
}

// Request is one encoded remote_write request.
type Request struct {
	Body    []byte // snappy-compressed WriteRequest
	Samples int
	Step    int // index of the (first) time step its samples are at
	Steps   int // time steps it carries
}

// Encoder encodes a Load's requests. It keeps the counters of Energy series,
// so one Encoder must encode each chunk's steps in order (any interleaving of
// chunks is fine), and chunks may be encoded concurrently only by Encoders
// that share nothing: use one Encoder per sender, from NewEncoder's Split.
type Encoder struct {
	l       Load
	labels  [][]prompb.Label // per series of the encoder's chunks, indexed by series
	counter []float64        // joules so far, per series (Energy)
	nextT   []int            // next window to encode, per chunk
	req     prompb.WriteRequest
	samples []prompb.Sample
	pb      []byte
}

// NewEncoders returns n Encoders, one per sender, each for the chunks
// ChunksOf(s, n); they share no mutable state.
func (l Load) NewEncoders(n int) []*Encoder {
	labels := make([][]prompb.Label, l.Fleet.Series)
	for i := range labels {
		labels[i] = l.Fleet.Labels(l.Kind, i)
	}
	counter := make([]float64, l.Fleet.Series)
	for i := range counter {
		// Counters start where a node's meter already is: weeks of energy.
		counter[i] = math.Round(1e9 * (1 + unit(uint64(i), 3)))
	}
	encs := make([]*Encoder, n)
	for s := range encs {
		encs[s] = &Encoder{l: l, labels: labels, counter: counter, nextT: make([]int, l.Chunks())}
	}
	return encs
}

// Encode returns chunk c's request w: its series' samples at time steps
// w*StepsPerRequest up to the next window (with StepsPerRequest 1, w is the
// time step). A chunk's windows must come in order.
func (e *Encoder) Encode(c, w int) (Request, error) {
	if e.nextT[c] != w {
		return Request{}, fmt.Errorf("loadgen: chunk %d encoded at window %d, want window %d next", c, w, e.nextT[c])
	}
	l := e.l
	if w >= l.Windows() {
		return Request{}, fmt.Errorf("loadgen: window %d of a load of %d", w, l.Windows())
	}
	e.nextT[c]++
	lo, hi := c*l.Batch, min((c+1)*l.Batch, l.Fleet.Series)
	k0 := w * l.stepsPerRequest()
	k1 := min(k0+l.stepsPerRequest(), l.Steps)
	n := (hi - lo) * (k1 - k0)
	if cap(e.samples) < n {
		e.samples = make([]prompb.Sample, n)
	}
	e.req.Timeseries = e.req.Timeseries[:0]
	j := 0
	for k := k0; k < k1; k++ {
		t := l.Start + int64(k)*l.Step
		for i := lo; i < hi; i++ {
			v := Watts(i, t)
			if l.Kind == Energy {
				e.counter[i] += v * float64(l.Step) / 1000
				v = e.counter[i]
			}
			sm := e.samples[j : j+1 : j+1]
			j++
			sm[0] = prompb.Sample{Value: v, Timestamp: t}
			e.req.Timeseries = append(e.req.Timeseries, prompb.TimeSeries{Labels: e.labels[i], Samples: sm})
		}
	}
	size := e.req.Size()
	if cap(e.pb) < size {
		e.pb = make([]byte, size)
	}
	m, err := e.req.MarshalToSizedBuffer(e.pb[:size])
	if err != nil {
		return Request{}, fmt.Errorf("loadgen: marshal: %w", err)
	}
	return Request{Body: snappy.Encode(nil, e.pb[size-m:size]), Samples: n, Step: k0, Steps: k1 - k0}, nil
}

// EncodeAll encodes the whole load for n senders: out[s] is sender s's
// requests in send order (window by window, its chunks in order within a window).
func (l Load) EncodeAll(n int) ([][]Request, error) {
	encs := l.NewEncoders(n)
	out := make([][]Request, n)
	errs := make(chan error, n)
	for s := range n {
		go func() {
			var err error
			defer func() { errs <- err }()
			cs := l.ChunksOf(s, n)
			out[s] = make([]Request, 0, len(cs)*l.Windows())
			for k := range l.Windows() {
				for _, c := range cs {
					var r Request
					if r, err = encs[s].Encode(c, k); err != nil {
						return
					}
					out[s] = append(out[s], r)
				}
			}
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return out, first
}
