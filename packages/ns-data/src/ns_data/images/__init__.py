"""Image bytes before any decoder: header sizes and structure, full-decode checks, shrinking."""
