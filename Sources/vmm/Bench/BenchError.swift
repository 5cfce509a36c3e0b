import VMMSys

/// A benchmark that could not run, with the reason (see `UserFacingError`).
typealias BenchError = UserFacingError
