"""Documents salesbot generates for customers (quotation PDFs) and the signed links providers fetch them by."""
