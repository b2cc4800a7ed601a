package fileserve

import "syscall"

const sysFstatat = syscall.SYS_FSTATAT
