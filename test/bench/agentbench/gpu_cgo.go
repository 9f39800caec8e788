//go:build linux && cgo

package main

import (
	"encoding/binary"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/gpu"
)

// mockGPU returns the gpu collector on a DGX H100 NVML mock (8 GPUs) with
// every function the collector calls set, and the number of GPUs.
func mockGPU() (collectors.Collector, int, error) {
	srv := dgxh100.New()
	for i, d := range srv.Devices {
		dev, ok := d.(*server.Device)
		if !ok {
			return nil, 0, fmt.Errorf("dgxh100 device %d is a %T", i, d)
		}
		energy := uint64(1_000_000_000 + 1_000_000*i) // mJ, growing every call
		dev.UUID = fmt.Sprintf("GPU-00000000-0000-0000-0000-%012d", i)
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(60000 + 10000*i), nvml.SUCCESS }
		dev.GetTotalEnergyConsumptionFunc = func() (uint64, nvml.Return) {
			energy += 60_000
			return energy, nvml.SUCCESS
		}
		dev.GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
			if s != nvml.TEMPERATURE_GPU {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return uint32(30 + i), nvml.SUCCESS
		}
		dev.GetFieldValuesFunc = func(fv []nvml.FieldValue) nvml.Return {
			for k := range fv {
				fv[k].NvmlReturn = uint32(nvml.ERROR_NOT_SUPPORTED)
				if fv[k].FieldId == nvml.FI_DEV_MEMORY_TEMP {
					fv[k].NvmlReturn = uint32(nvml.SUCCESS)
					fv[k].ValueType = uint32(nvml.VALUE_TYPE_UNSIGNED_INT)
					binary.NativeEndian.PutUint32(fv[k].Value[:], uint32(40+i))
				}
			}
			return nvml.SUCCESS
		}
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: uint32(5 + 10*i), Memory: uint32(3 * i)}, nvml.SUCCESS
		}
		dev.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return uint32(700000 - 2500*i), nvml.SUCCESS }
	}
	return gpu.NewWithLibrary(srv, collectors.Deps{}), len(srv.Devices), nil
}
