package api

import "time"

// Inventory is what an OCS Inventory NG agent reported about its machine,
// as GET /api/v1/devices/{ref}/inventory answers it.
type Inventory struct {
	Time      time.Time           `json:"time"`
	AgentID   string              `json:"agent_id"`
	Hostname  string              `json:"hostname"`
	OS        string              `json:"os"`
	OSVersion string              `json:"os_version,omitempty"`
	CPU       string              `json:"cpu,omitempty"`
	CPUs      int                 `json:"cpus,omitempty"`
	MemoryMB  int                 `json:"memory_mb,omitempty"`
	IP        string              `json:"ip,omitempty"`
	MACs      []string            `json:"macs,omitempty"`
	Software  []InventorySoftware `json:"software,omitempty"`
}

// InventorySoftware is one installed package.
type InventorySoftware struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}
