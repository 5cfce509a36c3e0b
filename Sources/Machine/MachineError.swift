/// A machine that could not be built or run, said in one line for the user.
public struct MachineError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
