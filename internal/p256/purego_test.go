//go:build purego

package p256

// puregoBuild: built with -tags purego, nistec's portable Go code.
const puregoBuild = true
