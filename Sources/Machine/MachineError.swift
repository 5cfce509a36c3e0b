import VMMSys

/// A machine that could not be built or run, said in one line for the user (see
/// `UserFacingError`).
public typealias MachineError = UserFacingError
