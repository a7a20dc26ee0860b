"""Writers: figures to PNG/SVG/PDF files, HTML reports, batch runs. Only here and in snapshots is disk touched."""
