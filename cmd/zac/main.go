package main

import (
	"os"

	"zonekit/internal/cli/zac"
)

func main() { os.Exit(zac.Main()) }
