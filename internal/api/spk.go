package api

// SPKValue is a stored value of a CPK variable.
type SPKValue struct {
	Value  string `json:"value"`
	Secret bool   `json:"secret,omitempty"`
}

// SPKValues are one scope's values (GET /api/v1/spk-values lists them;
// secret values come back as "********").
type SPKValues struct {
	Scope  string              `json:"scope"`
	Target string              `json:"target,omitempty"`
	Values map[string]SPKValue `json:"values"`
}

// SPKValuesChange is the body of POST /api/v1/spk-values.
type SPKValuesChange struct {
	Scope  string              `json:"scope"`            // zone, group or device
	Target string              `json:"target,omitempty"` // group name, or device ID or name
	Set    map[string]SPKValue `json:"set,omitempty"`
	Unset  []string            `json:"unset,omitempty"`
}

// DeviceSPKValues answers GET /api/v1/device/spk-values: the values that
// apply to the calling device, most specific scope winning.
type DeviceSPKValues struct {
	Values map[string]string `json:"values"`
	// Secret names the values set secret at some scope: the agent masks
	// them whatever the package declares.
	Secret []string `json:"secret,omitempty"`
}
