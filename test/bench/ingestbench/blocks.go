package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// blockMeta is the part of a TSDB block's meta.json the benchmark reads.
type blockMeta struct {
	ULID    string `json:"ulid"`
	MinTime int64  `json:"minTime"`
	MaxTime int64  `json:"maxTime"`
	Stats   struct {
		NumSamples uint64 `json:"numSamples"`
		NumSeries  uint64 `json:"numSeries"`
		NumChunks  uint64 `json:"numChunks"`
	} `json:"stats"`
	Compaction struct {
		Level   int `json:"level"`
		Parents []struct {
			ULID string `json:"ulid"`
		} `json:"parents"`
	} `json:"compaction"`
}

// blockInfo is one persisted block: its meta and its size on disk.
type blockInfo struct {
	Dir        string `json:"dir"`
	MinTime    int64  `json:"min_time_ms"`
	MaxTime    int64  `json:"max_time_ms"`
	Samples    uint64 `json:"samples"`
	Series     uint64 `json:"series"`
	Chunks     uint64 `json:"chunks"`
	Level      int    `json:"compaction_level"`
	Bytes      int64  `json:"bytes"`
	ChunkBytes int64  `json:"chunk_bytes"`
	IndexBytes int64  `json:"index_bytes"`
}

// isULID reports whether name looks like a ULID: 26 characters of Crockford base32.
func isULID(name string) bool {
	if len(name) != 26 {
		return false
	}
	for _, r := range name {
		if !strings.ContainsRune("0123456789ABCDEFGHJKMNPQRSTVWXYZ", r) {
			return false
		}
	}
	return true
}

// listBlocks returns the persisted blocks of a TSDB directory: directories
// named by a ULID that hold a meta.json (blocks being written or deleted have
// a suffix and are skipped), less blocks that a present block was compacted
// from (so a block is never counted twice while its parents await deletion).
func listBlocks(dataDir string) ([]blockInfo, error) {
	ents, err := os.ReadDir(dataDir)
	if err != nil {
		return nil, err
	}
	var blocks []blockInfo
	parents := map[string]bool{}
	for _, e := range ents {
		if !e.IsDir() || !isULID(e.Name()) {
			continue
		}
		dir := filepath.Join(dataDir, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var m blockMeta
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		for _, p := range m.Compaction.Parents {
			parents[p.ULID] = true
		}
		bi := blockInfo{Dir: e.Name(), MinTime: m.MinTime, MaxTime: m.MaxTime, Samples: m.Stats.NumSamples,
			Series: m.Stats.NumSeries, Chunks: m.Stats.NumChunks, Level: m.Compaction.Level}
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			bi.Bytes += info.Size()
			rel, _ := filepath.Rel(dir, path)
			switch {
			case strings.HasPrefix(rel, "chunks"+string(filepath.Separator)):
				bi.ChunkBytes += info.Size()
			case rel == "index":
				bi.IndexBytes += info.Size()
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, bi)
	}
	out := blocks[:0]
	for _, b := range blocks {
		if !parents[b.Dir] {
			out = append(out, b)
		}
	}
	return out, nil
}

// blockRange is the range of a TSDB's first-level blocks (2h).
const blockRange = int64(2 * 60 * 60 * 1000)

// fullRange reports whether the block covers a whole aligned 2h range, as
// opposed to the partial block holding the start of a load.
func (b blockInfo) fullRange() bool {
	return b.MinTime%blockRange == 0 && b.MaxTime-b.MinTime == blockRange
}
