from devenv.zoomsim.server import main

main()
