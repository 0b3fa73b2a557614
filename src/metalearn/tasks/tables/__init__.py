"""Grouped tables: one task per group of rows (a patient, a site), the glucose and remifentanil families."""
