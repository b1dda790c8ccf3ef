"""Education adapters: DfE Common Transfer File, Children Missing Education transfer, School Census exclusions."""
