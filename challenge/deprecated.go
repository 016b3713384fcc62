package challenge

// Names kept for one release; CHANGELOG.md says what replaces them.

// Error is the error Check returns when the shared store fails.
//
// Deprecated: use StoreError (the same type); dpop has an error of its own.
// Error goes in the next release.
type Error = StoreError
