//! Local Kubernetes control planes for tests (see issue 3).
