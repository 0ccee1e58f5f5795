// The model, the rules and the protocols of the core come with the store: `import JobStore` is
// all a program on the embedded store writes.
@_exported import JobCore
