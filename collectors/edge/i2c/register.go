package i2c

import (
	"github.com/greenloop/greenloop/collectors"
)

func init() {
	collectors.Register(Type, func(cfg collectors.TargetConfig, deps collectors.Deps) (collectors.Collector, error) {
		devs := make([]Device, 0, len(cfg.Devices))
		for _, d := range cfg.Devices {
			devs = append(devs, Device{Chip: d.Chip, Address: d.Address, ShuntOhms: d.ShuntOhms})
		}
		return New(Config{Bus: cfg.Bus, Devices: devs}, deps)
	})
}
