package mqtt

import (
	"strings"

	"github.com/greenloop/greenloop/collectors"
)

func init() {
	collectors.Register(Type, func(cfg collectors.TargetConfig, deps collectors.Deps) (collectors.Collector, error) {
		return New(Config{
			Broker:             cfg.Broker,
			Topics:             splitTopics(cfg.Topic),
			Format:             cfg.Format,
			Username:           cfg.Username,
			Password:           cfg.Password,
			CAFile:             cfg.CAFile,
			InsecureSkipVerify: cfg.InsecureSkipVerify,
		}, deps)
	})
}

// splitTopics reads the target's topic setting: one topic filter, or
// several separated by commas.
func splitTopics(s string) []string {
	var ts []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			ts = append(ts, t)
		}
	}
	return ts
}
