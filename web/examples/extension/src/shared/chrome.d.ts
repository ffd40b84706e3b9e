// The extension APIs, untyped (keeps the example free of @types/chrome).
declare const chrome: any;
