package datadominion.local;

import java.io.File;
import java.io.IOException;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's local file system, setting a file's permission through java.io instead of a
 * `chmod` process. Without Hadoop's native library (pyspark ships none) every file created
 * starts one: a data file, its checksum, each manifest (docs/decisions.md, "Local files").
 * java.io sets a permission for the owner or for everyone, so group and others get a bit only
 * when both have it: the result is the permission asked for or stricter, never looser.
 */
public class RawLocalFileSystemWithoutShell extends RawLocalFileSystem {
  public void setPermission(Path p, FsPermission permission) throws IOException {
    File file = pathToFile(p);
    int mode = permission.toShort();
    boolean set = apply(file, mode, 4, 0) & apply(file, mode, 2, 1) & apply(file, mode, 1, 2);
    if (!set) {
      throw new IOException("could not set the permission " + permission + " of " + file);
    }
  }

  /** One of read (4), write (2) and execute (1) for owner, group and others. */
  private static boolean apply(File file, int mode, int bit, int kind) {
    boolean owner = (mode & (bit << 6)) != 0;
    boolean everyone = (mode & (bit << 3)) != 0 && (mode & bit) != 0;
    boolean cleared = set(file, kind, false, false);
    if (everyone) {
      return set(file, kind, true, false);
    }
    return owner ? set(file, kind, true, true) : cleared;
  }

  private static boolean set(File file, int kind, boolean allowed, boolean ownerOnly) {
    if (kind == 0) {
      return file.setReadable(allowed, ownerOnly);
    }
    return kind == 1 ? file.setWritable(allowed, ownerOnly) : file.setExecutable(allowed, ownerOnly);
  }
}
