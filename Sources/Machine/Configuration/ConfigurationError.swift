import VMMSys

/// A command line or configuration the machine cannot run (see `UserFacingError`: one line,
/// control characters escaped).
public typealias ConfigurationError = UserFacingError
