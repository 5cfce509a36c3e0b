.code64
