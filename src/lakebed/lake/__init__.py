"""The lakehouse: Iceberg storage and catalog, bronze ingestion, publishing, quality."""
