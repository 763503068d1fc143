/** The service package is used through its CLI (`bin/bucketsync`); nothing is exported yet. */
export {};
