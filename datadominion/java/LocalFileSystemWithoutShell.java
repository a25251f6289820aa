package datadominion.local;

import org.apache.hadoop.fs.LocalFileSystem;

/** Hadoop's checksummed local file system over {@link RawLocalFileSystemWithoutShell}. */
public class LocalFileSystemWithoutShell extends LocalFileSystem {
  public LocalFileSystemWithoutShell() {
    super(new RawLocalFileSystemWithoutShell());
  }
}
