"""qt_data_logger: records labelled episode bags and converts them into training datasets."""
