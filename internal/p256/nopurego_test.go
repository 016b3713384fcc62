//go:build !purego

package p256

const puregoBuild = false
