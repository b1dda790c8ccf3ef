"""Agency adapters: pure functions from a native record (bytes) to canonical events or precise rejections."""
