package modem

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// makeRaw switches f to raw mode if it is a tty (a modem's audio port
// carries binary PCM: no echo, no line editing, no CR/LF translation, 8
// bits), like cfmakeraw(3). Other files are left alone.
func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	cerr := rc.Control(func(fd uintptr) {
		var t syscall.Termios
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t))); e != 0 {
			if e != syscall.ENOTTY && e != syscall.EINVAL {
				errno = e
			}
			return
		}
		t.Iflag &^= syscall.IGNBRK | syscall.BRKINT | syscall.PARMRK | syscall.ISTRIP | syscall.INLCR | syscall.IGNCR | syscall.ICRNL | syscall.IXON
		t.Oflag &^= syscall.OPOST
		t.Lflag &^= syscall.ECHO | syscall.ECHONL | syscall.ICANON | syscall.ISIG | syscall.IEXTEN
		t.Cflag &^= syscall.CSIZE | syscall.PARENB
		t.Cflag |= syscall.CS8
		t.Cc[syscall.VMIN] = 1
		t.Cc[syscall.VTIME] = 0
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCSETS, uintptr(unsafe.Pointer(&t))); e != 0 {
			errno = e
		}
	})
	if cerr != nil {
		return cerr
	}
	if errno != 0 {
		return errors.New("modem: " + errno.Error())
	}
	return nil
}
