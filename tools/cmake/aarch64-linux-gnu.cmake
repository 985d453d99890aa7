# Cross-compiling for arm64 (Raspberry Pi 3/4/5 with a 64-bit OS) with Debian's
# crossbuild-essential-arm64 and the :arm64 -dev packages (multiarch). Used by tools/cross.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# "/" too: architecture-independent CMake configs (CLI11, nlohmann_json) live in /usr/share/cmake.
set(CMAKE_FIND_ROOT_PATH "/usr/aarch64-linux-gnu;/")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
# Test discovery and ctest run the arm64 binaries through qemu's user-mode emulator. No
# QEMU_LD_PREFIX: the binaries find the arm64 glibc through the multiarch paths; mixing in
# /usr/aarch64-linux-gnu's copy makes every pthread_create spin.
set(CMAKE_CROSSCOMPILING_EMULATOR /usr/bin/qemu-aarch64-static)
