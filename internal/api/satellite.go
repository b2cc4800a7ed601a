package api

import "time"

// Satellite is a device holding satellite roles, as listed by GET
// /api/v1/satellites.
type Satellite struct {
	DeviceID   string    `json:"device_id"`
	DeviceName string    `json:"device_name"`
	Address    string    `json:"address"`
	Roles      []string  `json:"roles"`
	ContentURL string    `json:"content_url,omitempty"`
	Parent     string    `json:"parent,omitempty"`
	Prefetch   string    `json:"prefetch_interval,omitempty"` // Go duration; empty: on first request only
	AuthURL    string    `json:"auth_url,omitempty"`          // https://HOST:PORT of the Authentication role
	Added      time.Time `json:"added"`
}

// SatelliteRoleAdd is the body of POST /api/v1/satellites/{device}/roles.
type SatelliteRoleAdd struct {
	Role       string `json:"role"`
	ContentURL string `json:"content_url,omitempty"`
	Parent     string `json:"parent,omitempty"`
	Prefetch   string `json:"prefetch_interval,omitempty"` // Go duration, e.g. 30m
	AuthURL    string `json:"auth_url,omitempty"`          // https://HOST:PORT (Authentication role)
}
