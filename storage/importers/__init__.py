"""Plan importers: ``reading`` (docx/xlsx/csv -> rows), ``parse`` (rows -> plan), ``load`` (plan -> database)."""
