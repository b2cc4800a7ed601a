package pbserv

import "zonekit/internal/preboot/imaging"

// workSource is where the imaging service learns a device's work.
func workSource(o *Options) imaging.WorkSource { return nil }
