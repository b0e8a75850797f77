//! Topic names, filters and subscription matching.
